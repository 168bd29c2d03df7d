//! An interrupted statistics run resumes from its last checkpoint and ends where an
//! uninterrupted run does.

mod common;

use common::*;
use fairnc::collapse::run::{Collector, Run, RunOptions};
use fairnc::data::corpus::Corpus;
use fairnc::words::{ClassSet, Policy, WordSet};
use std::time::Duration;

#[test]
fn killed_run_resumes_to_the_same_result() {
    let m = load(&model_dir("bert"));
    let set = WordSet::load("gender").unwrap();
    let classes = ClassSet::map(&set, &m.tokenizer, Policy::WholeWord).unwrap();
    let corpus = Corpus::load(fixture("collapse/corpus.txt").to_str().unwrap()).unwrap();
    let opts = RunOptions { block: 10, checkpoint_every: Duration::ZERO, ..RunOptions::default() };

    let whole = tempfile::tempdir().unwrap();
    let run = Run::new(Collector::new(&m, &classes, opts.clone()), &corpus, None, whole.path()).unwrap();
    let stats = run.stats().unwrap();
    let decisions = run.decisions(&stats).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let killed = RunOptions { stop_after_blocks: Some(4), ..opts.clone() };
    let run = Run::new(Collector::new(&m, &classes, killed.clone()), &corpus, None, dir.path()).unwrap();
    assert!(run.stats().is_err());
    assert!(dir.path().join(".partial-stats.safetensors").exists());
    let run = Run::new(Collector::new(&m, &classes, opts.clone()), &corpus, None, dir.path()).unwrap();
    let resumed = run.stats().unwrap();
    assert_eq!(resumed, stats);
    assert!(!dir.path().join(".partial-stats.safetensors").exists());

    let run = Run::new(Collector::new(&m, &classes, killed), &corpus, None, dir.path()).unwrap();
    // Statistics are finished and reused; the decision pass is interrupted and resumed.
    assert_eq!(run.stats().unwrap(), stats);
    assert!(run.decisions(&stats).is_err());
    let run = Run::new(Collector::new(&m, &classes, opts), &corpus, None, dir.path()).unwrap();
    assert_eq!(run.decisions(&stats).unwrap(), decisions);
}
