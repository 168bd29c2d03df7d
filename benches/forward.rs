//! Forward throughput (tokens/s, hidden states only) for MiniLM at 32×128 and a random
//! BERT-base-sized model at 8×128. Run: `cargo bench --bench forward`.
//! The PyTorch figure for the same work: `tools/bench/forward_torch.py`.

mod common;

use fairnc::model::{Exec, LanguageModel, LoadOptions};
use fairnc::util::rng::SplitMix;
use std::time::Instant;

fn throughput(m: &LanguageModel, batch: usize, len: usize, reps: usize) -> f64 {
    let mut rng = SplitMix::new(2);
    let rows: Vec<Vec<u32>> = (0..batch).map(|_| (0..len).map(|_| 1000 + rng.below(20000) as u32).collect()).collect();
    let b = m.batch(rows).unwrap();
    m.hidden(&b, Exec::INFER).unwrap(); // warm-up
    let start = Instant::now();
    for _ in 0..reps {
        let h = m.hidden(&b, Exec::INFER).unwrap();
        std::hint::black_box(h);
    }
    (batch * len * reps) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    fairnc::util::alloc::tune();
    // `cargo bench --bench forward -- minilm` runs one case.
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    let minilm = fairnc::registry::resolve("minilm").expect("minilm bundle");
    if wanted("minilm") {
        let m = LanguageModel::load(&minilm, &LoadOptions::default()).unwrap();
        println!("minilm     32x128  {:>8.0} tok/s", throughput(&m, 32, 128, 8));
    }
    if !wanted("bert-base") {
        return;
    }
    let dir = common::random_bert_base(&minilm);
    let m = LanguageModel::load(dir.path(), &LoadOptions::default()).unwrap();
    println!("bert-base   8x128  {:>8.0} tok/s", throughput(&m, 8, 128, 8));
}
