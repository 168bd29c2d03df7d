//! AdamW with decoupled weight decay (PyTorch's `torch.optim.AdamW`), the linear learning-rate
//! schedule with optional warm-up (`transformers.get_linear_schedule_with_warmup`), and
//! global-norm gradient clipping (`torch.nn.utils.clip_grad_norm_`).

use crate::model::kernels::{AdamWScalars, AdamWUpdate};
use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use std::cell::RefCell;
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
    moments: Moments,
}

/// The first and second moment estimates of one parameter.
enum Moments {
    /// For a contiguous f32 parameter on the CPU: host vectors that the fused in-place update
    /// ([`AdamWUpdate`]) reads and writes with the parameter, no temporaries.
    Host { m: Vec<f32>, v: Vec<f32> },
    /// Anything else (GPU, f16/bf16): tensors, updated by composed tensor operations.
    Tensors { m: Tensor, v: Tensor },
}

impl Moments {
    /// Zero moments for parameter `t`: host vectors where `fuse` and the fused update applies.
    fn zeros(t: &Tensor, fuse: bool) -> Result<Self> {
        Ok(if fuse && fusable(t) {
            Moments::Host { m: vec![0f32; t.elem_count()], v: vec![0f32; t.elem_count()] }
        } else {
            Moments::Tensors { m: t.zeros_like()?, v: t.zeros_like()? }
        })
    }

    fn tensors(&self, like: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok(match self {
            Moments::Host { m, v } => {
                let t = |x: &Vec<f32>| Tensor::from_slice(x, like.shape(), like.device());
                (t(m)?, t(v)?)
            }
            Moments::Tensors { m, v } => (m.clone(), v.clone()),
        })
    }

    fn set(&mut self, m: &Tensor, v: &Tensor) -> Result<()> {
        match self {
            Moments::Host { m: hm, v: hv } => {
                for (dst, src) in [(hm, m), (hv, v)] {
                    let got = src.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                    if got.len() != dst.len() {
                        anyhow::bail!("optimizer state: {} elements where the parameter has {}", got.len(), dst.len());
                    }
                    *dst = got;
                }
            }
            Moments::Tensors { m: tm, v: tv } => (*tm, *tv) = (m.clone(), v.clone()),
        }
        Ok(())
    }
}

/// Whether the fused in-place update applies to a parameter.
fn fusable(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous()
}

pub struct AdamW {
    pub config: AdamWConfig,
    slots: BTreeMap<String, Slot>,
    pub step: u64,
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        Self::with_moments(vars, config, true)
    }

    /// `fuse`: the fused in-place update where it applies (false: composed tensor operations
    /// everywhere, the reference the fused kernel is tested against).
    fn with_moments(vars: Vec<(String, Var)>, config: AdamWConfig, fuse: bool) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let moments = Moments::zeros(var.as_tensor(), fuse)?;
                Ok((name.clone(), Slot { decay: decays(&name), lr_scale: 1.0, var, moments }))
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
            let decay = if slot.decay && c.weight_decay != 0.0 { Some(1.0 - lr * c.weight_decay) } else { None };
            match &mut slot.moments {
                Moments::Host { m, v } if g.dtype() == DType::F32 && g.device().is_cpu() => {
                    let scalars = AdamWScalars {
                        decay: decay.unwrap_or(1.0) as f32,
                        beta1: c.beta1 as f32,
                        one_minus_beta1: (1.0 - c.beta1) as f32,
                        beta2: c.beta2 as f32,
                        one_minus_beta2: (1.0 - c.beta2) as f32,
                        inv_bc2_sqrt: (1.0 / bc2_sqrt) as f32,
                        eps: c.eps as f32,
                        step_size: (lr / bc1) as f32,
                    };
                    let op = AdamWUpdate { m: RefCell::new(m), v: RefCell::new(v), scalars };
                    slot.var.as_tensor().inplace_op2(&g.contiguous()?, &op)?;
                }
                Moments::Host { .. } => {
                    anyhow::bail!("AdamW: a {:?} gradient on {:?} for an f32 CPU parameter", g.dtype(), g.device())
                }
                Moments::Tensors { m, v } => {
                    let mut p = slot.var.as_tensor().clone();
                    if let Some(d) = decay {
                        p = (p * d)?;
                    }
                    *m = ((&*m * c.beta1)? + (g * (1.0 - c.beta1))?)?;
                    *v = ((&*v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
                    let denom = ((v.sqrt()? / bc2_sqrt)? + c.eps)?;
                    let update = (m.div(&denom)? * (lr / bc1))?;
                    slot.var.set(&(p - update)?)?;
                }
            }
        }
        Ok(())
    }

    /// Moment estimates by parameter name, for checkpoints.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::with_capacity(2 * self.slots.len());
        for (n, s) in &self.slots {
            let (m, v) = s.moments.tensors(s.var.as_tensor())?;
            out.push((format!("{n}.exp_avg"), m));
            out.push((format!("{n}.exp_avg_sq"), v));
        }
        Ok(out)
    }

    /// Restores [`Self::state`] and the step count.
    pub fn load_state(&mut self, state: &BTreeMap<String, Tensor>, step: u64) -> Result<()> {
        for (n, s) in self.slots.iter_mut() {
            let get = |k: String| state.get(&k).cloned().ok_or_else(|| anyhow::anyhow!("optimizer state has no {k}"));
            let (m, v) = (get(format!("{n}.exp_avg"))?, get(format!("{n}.exp_avg_sq"))?);
            s.moments.set(&m, &v)?;
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

    /// The fused in-place kernel against the composed tensor operations: three steps on a
    /// decayed matrix and an undecayed bias (one at a scaled learning rate), equal values, and the
    /// optimizer state saved by one restores the other.
    #[test]
    fn fused_update_is_bit_identical_to_the_composed_one() {
        use crate::model::kernels::test_util::randn;
        let cfg = AdamWConfig { lr: 1e-3, weight_decay: 0.01, ..AdamWConfig::default() };
        let make = |fuse: bool| {
            let w = Var::from_tensor(&randn(&[70_001], 1)).unwrap();
            let b = Var::from_tensor(&randn(&[37], 2)).unwrap();
            let mut opt =
                AdamW::with_moments(vec![("l.weight".into(), w.clone()), ("l.bias".into(), b.clone())], cfg, fuse)
                    .unwrap();
            opt.scale_lr(|n| n.ends_with("bias"), 20.0);
            (opt, w, b)
        };
        let ((mut fused, fw, fb), (mut composed, cw, cb)) = (make(true), make(false));
        assert!(matches!(fused.slots["l.weight"].moments, Moments::Host { .. }));
        for t in 0..3u64 {
            let gw = randn(&[70_001], 10 + t);
            let gb = randn(&[37], 20 + t);
            for (opt, w, b) in [(&mut fused, &fw, &fb), (&mut composed, &cw, &cb)] {
                let loss = ((w.as_tensor() * &gw).unwrap().sum_all().unwrap()
                    + (b.as_tensor() * &gb).unwrap().sum_all().unwrap())
                .unwrap();
                opt.step(&loss.backward().unwrap(), linear_schedule(cfg.lr, t, 1, 10)).unwrap();
            }
        }
        // The first element where two tensors differ (values, so −0 equals +0), if any.
        let first_difference = |a: &Tensor, b: &Tensor| {
            let (a, b) = (a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
            assert_eq!(a.len(), b.len());
            a.iter().zip(&b).position(|(x, y)| x != y).map(|i| (i, a[i], b[i]))
        };
        assert_eq!(first_difference(fw.as_tensor(), cw.as_tensor()), None);
        assert_eq!(first_difference(fb.as_tensor(), cb.as_tensor()), None);
        let (fs, cs) = (fused.state().unwrap(), composed.state().unwrap());
        assert_eq!(fs.len(), 4);
        for ((nf, tf), (nc, tc)) in fs.iter().zip(&cs) {
            assert_eq!(nf, nc);
            assert_eq!(first_difference(tf, tc), None, "{nf}");
        }
        let (mut restored, _, _) = make(true);
        restored.load_state(&cs.into_iter().collect(), 3).unwrap();
        for ((n, back), (_, saved)) in restored.state().unwrap().iter().zip(&fs) {
            assert_eq!(first_difference(back, saved), None, "{n} after load_state");
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
