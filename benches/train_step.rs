//! Masked-LM training-step time (forward, backward, clipping, AdamW) for MiniLM at 32×64 and
//! a random BERT-base-sized model at 8×128. Run: `cargo bench --bench train_step [-- minilm]`.
//! PyTorch for the same work: `tools/bench/train_step_torch.py`.

mod common;

use candle_core::Tensor;
use fairnc::model::{Exec, LanguageModel, LoadOptions};
use fairnc::train::masking::{MaskingConfig, mask_tokens};
use fairnc::train::optim::{AdamW, AdamWConfig, clip_grad_norm};
use fairnc::util::rng::SplitMix;
use std::time::Instant;

fn step_time(m: &LanguageModel, batch: usize, len: usize, reps: usize) -> f64 {
    let mut rng = SplitMix::new(2);
    let rows: Vec<Vec<u32>> = (0..batch).map(|_| (0..len).map(|_| 1000 + rng.below(20000) as u32).collect()).collect();
    let vars: Vec<candle_core::Var> = m.vars().into_iter().map(|(_, v)| v).collect();
    let mut opt = AdamW::new(m.vars(), AdamWConfig::default()).unwrap();
    let mask_id = m.tokenizer.mask.as_ref().unwrap().1;
    let cfg = MaskingConfig { probability: 0.15, mask_id, vocab_size: m.tokenizer.vocab_size() };
    let mut once = || {
        let masked = mask_tokens(&rows, &m.tokenizer.special_ids, &cfg, &mut rng);
        let b = m.batch(masked.inputs).unwrap();
        let h = m.hidden(&b, Exec::TRAIN).unwrap();
        let logits = m.logits_at(&h, &masked.positions, Exec::TRAIN).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &Tensor::new(masked.targets.as_slice(), &m.device).unwrap())
            .unwrap();
        let mut g = loss.backward().unwrap();
        clip_grad_norm(&mut g, &vars, 1.0).unwrap();
        opt.step(&g, 2e-5).unwrap();
    };
    once();
    let t = Instant::now();
    for _ in 0..reps {
        once();
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    fairnc::util::alloc::tune();
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    let minilm = fairnc::registry::resolve("minilm").unwrap();
    if wanted("minilm") {
        let m = LanguageModel::load(&minilm, &LoadOptions::default()).unwrap();
        println!("minilm     32x64   {:>6.3} s/step", step_time(&m, 32, 64, 3));
    }
    if wanted("bert-base") {
        let dir = common::random_bert_base(&minilm);
        let m = LanguageModel::load(dir.path(), &LoadOptions::default()).unwrap();
        println!("bert-base   8x128  {:>6.3} s/step", step_time(&m, 8, 128, 3));
    }
}
