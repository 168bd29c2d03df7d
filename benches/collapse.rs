//! Statistics throughput on MiniLM over BUG (gender words), against the forward pass alone.
//! Run: `cargo bench --bench collapse [-- N_TEXTS]` (default 2,000 evenly spread BUG texts).
//! The PyTorch figure for the release's accumulation path: `tools/bench/collapse_torch.py`.

use fairnc::collapse::run::{Collector, Run, RunOptions};
use fairnc::data::corpus::Corpus;
use fairnc::model::{Exec, LanguageModel, LoadOptions, Overflow, plan_by_length};
use fairnc::util::progress::Silent;
use fairnc::words::{ClassSet, Policy, WordSet};
use std::time::Instant;

fn main() {
    fairnc::util::alloc::tune();
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2000);
    let dir = fairnc::registry::resolve("minilm").unwrap();
    let m = LanguageModel::load(&dir, &LoadOptions::default()).unwrap();
    let corpus = Corpus::load("bug").unwrap().subsample(Some(n));
    let set = WordSet::load("gender").unwrap();
    let classes = ClassSet::map(&set, &m.tokenizer, Policy::WholeWord).unwrap();
    // The statistics part (held-out texts go to the decision pass).
    let texts: Vec<&str> = corpus
        .texts
        .iter()
        .enumerate()
        .filter(|(i, _)| !Corpus::is_heldout(*i, 0.2))
        .map(|(_, t)| t.as_str())
        .collect();
    let enc = m.encode(&texts, 128, Overflow::Truncate).unwrap();
    let lengths: Vec<usize> = enc.iter().map(|e| e.ids.len()).collect();
    let tokens: usize = lengths.iter().sum();

    let t = Instant::now();
    for group in plan_by_length(&lengths, 64, 64 * 128) {
        let b = m.batch(group.iter().map(|&i| enc[i].ids.clone()).collect()).unwrap();
        std::hint::black_box(m.hidden(&b, Exec::INFER).unwrap());
    }
    let forward = tokens as f64 / t.elapsed().as_secs_f64();

    let tmp = tempfile::tempdir().unwrap();
    let run = Run::new(Collector::new(&m, &classes, RunOptions::default()), &corpus, None, tmp.path()).unwrap();
    let t = Instant::now();
    let stats = run.stats(&Silent).unwrap();
    let stats_rate = tokens as f64 / t.elapsed().as_secs_f64();
    // The whole vocabulary as classes: every position is accumulated, as in the release.
    let vocab = ClassSet::vocabulary(&m.tokenizer);
    let tmp2 = tempfile::tempdir().unwrap();
    let run = Run::new(Collector::new(&m, &vocab, RunOptions::default()), &corpus, None, tmp2.path()).unwrap();
    let t = Instant::now();
    let all = run.stats(&Silent).unwrap();
    let vocab_rate = tokens as f64 / t.elapsed().as_secs_f64();
    println!("texts {} (statistics part {}), tokens {tokens}", corpus.texts.len(), texts.len());
    println!("forward only                          {forward:>8.0} tok/s");
    println!("statistics, gender words ({:>5} pos) {stats_rate:>8.0} tok/s", stats.positions());
    println!("statistics, full vocabulary ({:>6} pos) {vocab_rate:>8.0} tok/s", all.positions());
}
