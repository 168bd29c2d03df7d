//! The training loop: deterministic data order, AdamW with a linear schedule, gradient
//! accumulation and clipping (after every loss term), the NC3 regularizer, a JSONL log, and
//! atomic checkpoints from which a killed run resumes to the same result.
//!
//! Every random draw of a step (masking, dropout) comes from generators seeded by (seed, step),
//! and the data order from (seed, epoch), so a checkpoint needs only the step count besides
//! weights, optimizer moments and the regularizer's running sums.

use super::log::{self, LogRecord, LogWriter};
use super::nc3::{Nc3Regularizer, Nc3Variant};
use super::objective::Objective;
use super::optim::{AdamW, AdamWConfig, clip_grad_norm, linear_schedule};
use crate::model::LanguageModel;
use crate::util::progress::{Progress, Unit};
use crate::util::rng::SplitMix;
use anyhow::{Context, Result, bail};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub steps: u64,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub adamw: AdamWConfig,
    pub warmup: u64,
    pub max_grad_norm: f64,
    pub seed: u64,
    pub checkpoint_every: u64,
    /// λ of the NC3 term (None: no regularizer).
    pub nc3_lambda: Option<f64>,
    pub nc3_variant: Nc3Variant,
    /// Update only the LM head's own parameters (transform and bias), not the encoder.
    #[serde(default)]
    pub head_only: bool,
    /// Learning-rate multiplier of the LM head's own parameters (1: one group).
    #[serde(default = "one")]
    pub head_lr_scale: f64,
    /// Abort after this many steps of this invocation, as a killed run would (tests).
    #[serde(skip)]
    pub stop_after: Option<u64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 100,
            batch_size: 32,
            grad_accum: 1,
            adamw: AdamWConfig::default(),
            warmup: 0,
            max_grad_norm: 1.0,
            seed: 0,
            checkpoint_every: 50,
            nc3_lambda: None,
            nc3_variant: Nc3Variant::Std,
            head_only: false,
            head_lr_scale: 1.0,
            stop_after: None,
        }
    }
}

fn one() -> f64 {
    1.0
}

fn mix(a: u64, b: u64) -> u64 {
    SplitMix::substream(a, b).next_u64()
}

/// The examples of micro-batch `micro` of step `step`: a stream of seeded per-epoch permutations.
fn examples(n: usize, seed: u64, step: u64, micro: usize, cfg: &TrainConfig) -> Vec<usize> {
    let per_step = cfg.batch_size * cfg.grad_accum;
    let start = step as usize * per_step + micro * cfg.batch_size;
    // A batch spans at most a few epochs: shuffle each once.
    let mut orders: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    (start..start + cfg.batch_size)
        .map(|k| {
            let (epoch, off) = (k / n, k % n);
            let order = orders.entry(epoch).or_insert_with(|| {
                let mut order: Vec<usize> = (0..n).collect();
                SplitMix::new(mix(seed, epoch as u64)).shuffle(&mut order);
                order
            });
            order[off]
        })
        .collect()
}

pub struct Trainer<'a> {
    pub model: &'a LanguageModel,
    pub cfg: TrainConfig,
    pub out: PathBuf,
    pub nc3: Option<Nc3Regularizer>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CheckpointState {
    step: u64,
    config: TrainConfig,
}

impl Trainer<'_> {
    fn latest(&self) -> PathBuf {
        self.out.join("checkpoint-latest")
    }

    /// Writes `checkpoint-<step>/` completely, then points `checkpoint-latest` at it in one
    /// atomic rename, then removes older checkpoints: a crash at any moment leaves a good one.
    fn checkpoint(&self, step: u64, opt: &AdamW, extra: &[(String, Var)]) -> Result<()> {
        let dir = self.out.join(format!("checkpoint-{step}"));
        let written = self.write_checkpoint(&dir, step, opt, extra);
        if written.is_err() {
            // Disk full or similar: drop the partial directory; `checkpoint-latest` still names
            // the previous, complete checkpoint.
            let _ = std::fs::remove_dir_all(&dir);
            return written
                .with_context(|| format!("checkpoint at step {step} not written; the previous checkpoint is kept"));
        }
        for entry in std::fs::read_dir(&self.out)?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("checkpoint-") && name != "checkpoint-latest" && entry.path() != dir {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }

    fn write_checkpoint(&self, dir: &Path, step: u64, opt: &AdamW, extra: &[(String, Var)]) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        self.model.params.save(&dir.join("model.safetensors"))?;
        if !extra.is_empty() {
            let tensors: Vec<(String, candle_core::Tensor)> =
                extra.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
            crate::model::weights::save_tensors(&tensors, &dir.join("head.safetensors"))?;
        }
        let mut state = opt.state()?;
        if let Some(r) = &self.nc3 {
            state.extend(r.state("nc3.")?);
        }
        crate::model::weights::save_tensors(&state, &dir.join("optimizer.safetensors"))?;
        let meta = serde_json::to_string_pretty(&CheckpointState { step, config: self.cfg.clone() })?;
        crate::util::fs::write_atomic(&dir.join("state.json"), meta.as_bytes())?;
        crate::util::fs::write_atomic(&self.latest(), dir.file_name().unwrap().to_string_lossy().as_bytes())
    }

    /// Restores the latest checkpoint, if any; returns the step to continue from.
    fn resume(&mut self, opt: &mut AdamW, extra: &[(String, Var)], progress: &dyn Progress) -> Result<u64> {
        let Ok(name) = std::fs::read_to_string(self.latest()) else { return Ok(0) };
        let dir = self.out.join(name.trim());
        let meta: CheckpointState = serde_json::from_str(
            &std::fs::read_to_string(dir.join("state.json"))
                .with_context(|| format!("{}: cannot read", dir.display()))?,
        )
        .with_context(|| format!("{}: unreadable checkpoint state", dir.display()))?;
        let dev = &self.model.device;
        let weights = crate::model::weights::load_tensors(&dir.join("model.safetensors"), dev)?;
        for (name, var) in self.model.vars() {
            let t = weights.get(&name).with_context(|| format!("{}: checkpoint lacks {name}", dir.display()))?;
            var.set(t)?;
        }
        if !extra.is_empty() {
            let head = crate::model::weights::load_tensors(&dir.join("head.safetensors"), dev)?;
            for (name, var) in extra {
                var.set(head.get(name).with_context(|| format!("{}: checkpoint lacks {name}", dir.display()))?)?;
            }
        }
        let state = crate::model::weights::load_tensors(&dir.join("optimizer.safetensors"), dev)?;
        // Moments exist only for the trained parameters (all, or the head's).
        opt.load_state(&state, meta.step)?;
        if let Some(r) = &mut self.nc3 {
            r.load_state(&state, "nc3.")?;
        }
        progress.message(&format!("resuming from {} (step {})", dir.display(), meta.step));
        Ok(meta.step)
    }

    /// Runs (or resumes) training; returns the number of steps done in all.
    pub fn run(&mut self, objective: &dyn Objective, progress: &dyn Progress) -> Result<u64> {
        if objective.is_empty() {
            bail!("no training examples");
        }
        std::fs::create_dir_all(&self.out).with_context(|| format!("{}: cannot create", self.out.display()))?;
        let extra = objective.extra_vars();
        let trained = self.trained_vars(&extra)?;
        let vars: Vec<Var> = trained.iter().map(|(_, v)| v.clone()).collect();
        let names: Vec<String> = trained.iter().map(|(n, _)| n.clone()).collect();
        let mut opt = AdamW::new(trained, self.cfg.adamw)?;
        opt.scale_lr(crate::model::layout::is_head_param, self.cfg.head_lr_scale);
        let start = self.resume(&mut opt, &extra, progress)?;
        let log_path = self.out.join(log::FILE);
        log::keep_until(&log_path, start)?;
        let mut log = LogWriter::append_to(&log_path)?;
        let phase = progress.phase(objective.name(), self.cfg.steps, Unit::Items);
        phase.set(start);
        let began = std::time::Instant::now();
        let mut tokens = 0usize;
        for step in start..self.cfg.steps {
            if self.cfg.stop_after == Some(step - start) {
                bail!("stopped after {} steps", step - start);
            }
            let lr = linear_schedule(self.cfg.adamw.lr, step, self.cfg.warmup, self.cfg.steps);
            let mut sums = self.accumulate(objective, step, &vars)?;
            tokens += sums.tokens;
            let norm = clip_or_name_non_finite(&mut sums.grads, &vars, &names, self.cfg.max_grad_norm, step)?;
            opt.step(&sums.grads, lr)?;
            let record = LogRecord {
                step: step + 1,
                loss: sums.total,
                terms: sums.terms,
                lr,
                grad_norm: norm,
                tokens_per_s: tokens as f64 / began.elapsed().as_secs_f64(),
                nc3_classes: sums.nc3_classes,
                // The first step of a resumed invocation says where it took over.
                resumed_from: (step == start && start > 0).then_some(start),
            };
            log.write(&record)?;
            phase.set(step + 1);
            phase.status(&format!("loss {:.4}", record.loss));
            if (step + 1) % self.cfg.checkpoint_every.max(1) == 0 || step + 1 == self.cfg.steps {
                self.checkpoint(step + 1, &opt, &extra)?;
            }
        }
        Ok(self.cfg.steps)
    }

    /// The parameters the optimizer updates: the model's (all, or only the LM head's own) and
    /// the objective's task head.
    fn trained_vars(&self, extra: &[(String, Var)]) -> Result<Vec<(String, Var)>> {
        let trained: Vec<(String, Var)> = self
            .model
            .vars()
            .into_iter()
            .filter(|(n, _)| !self.cfg.head_only || crate::model::layout::is_head_param(n))
            .chain(extra.iter().cloned())
            .collect();
        if trained.is_empty() {
            bail!(
                "nothing to train: this model's LM head has no parameters of its own (its decoder is the tied embedding)"
            );
        }
        Ok(trained)
    }

    /// Runs the `grad_accum` micro-batches of `step` and sums what they give, each weighted by
    /// 1 / `grad_accum`; stops at the first non-finite loss, naming the terms that are.
    fn accumulate(&mut self, objective: &dyn Objective, step: u64, vars: &[Var]) -> Result<StepSums> {
        let weight = self.cfg.grad_accum as f64;
        let mut grads: Option<GradStore> = None;
        let mut sums = StepSums::default();
        for micro in 0..self.cfg.grad_accum.max(1) {
            let mb = self.micro_batch(objective, step, micro)?;
            sums.tokens += mb.tokens;
            for (k, v) in &mb.terms {
                *sums.terms.entry(k.clone()).or_default() += v / weight;
            }
            if let Some((spread, classes)) = mb.nc3 {
                *sums.terms.entry("nc3".into()).or_default() += spread / weight;
                sums.nc3_classes = classes;
            }
            let value = mb.loss.to_scalar::<f32>()?;
            sums.total += value as f64 / weight;
            if !value.is_finite() {
                let bad: Vec<String> =
                    sums.terms.iter().filter(|(_, v)| !v.is_finite()).map(|(k, _)| k.clone()).collect();
                let which = if bad.is_empty() {
                    "total: every term is finite, their weighted sum is not".to_string()
                } else {
                    bad.join(", ")
                };
                bail!("non-finite loss at step {} (terms: {which}); the last checkpoint is kept", step + 1);
            }
            let g = (mb.loss / weight)?.backward()?;
            grads = Some(match grads {
                None => g,
                Some(acc) => add_grads(acc, &g, vars)?,
            });
        }
        sums.grads = grads.expect("at least one micro-batch");
        Ok(sums)
    }

    /// One micro-batch: its examples and random streams (from seed, step and micro), the
    /// objective's loss, and the NC3 term on its hidden states (added with weight λ, if any).
    fn micro_batch(&mut self, objective: &dyn Objective, step: u64, micro: usize) -> Result<MicroBatch> {
        let seed = mix(self.cfg.seed, step * 1000 + micro as u64);
        self.model.dropout_rng().reseed(seed ^ 0xD);
        let mut rng = SplitMix::new(seed);
        let ex = examples(objective.len(), self.cfg.seed, step, micro, &self.cfg);
        let out = objective.step(self.model, &ex, &mut rng)?;
        // The objective's own loss first: diverged weights would otherwise surface as the
        // regularizer's complaint about a NaN feature, naming neither step nor term.
        if !out.loss.to_scalar::<f32>()?.is_finite() {
            let bad: Vec<&str> = out.terms.iter().filter(|(_, v)| !v.is_finite()).map(|(k, _)| k.as_str()).collect();
            bail!(
                "non-finite loss at step {} (terms: {}); the last checkpoint is kept",
                step + 1,
                if bad.is_empty() { objective.name().to_string() } else { bad.join(", ") }
            );
        }
        let mut loss = out.loss;
        let mut nc3 = None;
        // With a regularizer but no λ the NC3 spread is only logged (a baseline to compare with).
        if let Some(r) = &mut self.nc3 {
            r.observe(&out.hidden, &out.rows).with_context(|| format!("step {}: NC3 regularizer", step + 1))?;
            if let Some(t) = r.term(self.model.classifier().as_tensor())? {
                nc3 = Some((t.loss.to_scalar::<f32>()? as f64, t.classes));
                if let Some(lambda) = self.cfg.nc3_lambda {
                    loss = (loss + (t.loss * lambda)?)?;
                }
            }
        }
        Ok(MicroBatch { loss, terms: out.terms, nc3, tokens: out.tokens })
    }
}

/// What one micro-batch contributes to its step.
struct MicroBatch {
    /// The objective's loss plus λ × the NC3 term.
    loss: Tensor,
    /// The objective's terms, unweighted.
    terms: Vec<(String, f64)>,
    /// The NC3 spread and the classes it saw, when the regularizer had two classes or more.
    nc3: Option<(f64, usize)>,
    tokens: usize,
}

/// A step's micro-batches summed.
#[derive(Default)]
struct StepSums {
    grads: GradStore,
    terms: BTreeMap<String, f64>,
    total: f64,
    nc3_classes: usize,
    tokens: usize,
}

/// `acc` with the gradients of `g` added, for every trained variable `g` reached.
fn add_grads(mut acc: GradStore, g: &GradStore, vars: &[Var]) -> Result<GradStore> {
    for v in vars {
        if let Some(new) = g.get(v.as_tensor()) {
            let sum = match acc.get(v.as_tensor()) {
                Some(old) => (old + new)?,
                None => new.clone(),
            };
            acc.insert(v.as_tensor(), sum);
        }
    }
    Ok(acc)
}

/// Clips the gradient to `max_norm` and returns its norm before clipping; a non-finite norm
/// stops the run, naming the parameters it reached.
fn clip_or_name_non_finite(
    grads: &mut GradStore,
    vars: &[Var],
    names: &[String],
    max_norm: f64,
    step: u64,
) -> Result<f64> {
    let norm = clip_grad_norm(grads, vars, max_norm)?;
    if norm.is_finite() {
        return Ok(norm);
    }
    // The loss was finite, so the gradient cannot be told apart by loss term: name the
    // parameters it reached (clipping keeps a non-finite gradient non-finite).
    let bad: Vec<&str> = vars
        .iter()
        .zip(names)
        .filter(|(v, _)| grads.get(v.as_tensor()).is_some_and(|g| !squared_norm(g).is_ok_and(f64::is_finite)))
        .map(|(_, n)| n.as_str())
        .collect();
    let shown =
        if bad.len() > 3 { format!("{} and {} more", bad[..3].join(", "), bad.len() - 3) } else { bad.join(", ") };
    bail!("non-finite gradient norm at step {} (parameters: {shown}); the last checkpoint is kept", step + 1);
}

fn squared_norm(g: &Tensor) -> candle_core::Result<f64> {
    g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()
}

/// Removes a finished run's checkpoints (`checkpoint-<step>/` and the `checkpoint-latest`
/// pointer): once the result or the model is saved they are only disk.
pub fn remove_checkpoints(run_dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(run_dir).with_context(|| format!("{}: cannot list", run_dir.display()))?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("checkpoint-") {
            let p = entry.path();
            if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) }
                .with_context(|| format!("{}: cannot remove", p.display()))?;
        }
    }
    Ok(())
}
