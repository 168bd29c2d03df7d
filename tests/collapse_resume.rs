//! An interrupted statistics run resumes from its last checkpoint and ends where an
//! uninterrupted run does.

mod common;

use common::*;
use fairnc::collapse::run::{Collector, Pass, PassProgress, Run, RunOptions};
use fairnc::data::corpus::Corpus;
use fairnc::util::progress::Silent;
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
    let stats = run.stats(&Silent).unwrap();
    let decisions = run.decisions(&stats, &Silent).unwrap();
    let blocks = corpus.texts.len().div_ceil(10);
    assert!(blocks > 4, "the fixture corpus has only {blocks} blocks of 10 texts");
    assert_eq!(run.progress(Pass::Stats), PassProgress { reused: false, resumed_from: None, blocks_processed: blocks });
    assert_eq!(
        run.progress(Pass::Decisions),
        PassProgress { reused: false, resumed_from: None, blocks_processed: blocks }
    );

    let dir = tempfile::tempdir().unwrap();
    let killed = RunOptions { stop_after_blocks: Some(4), ..opts.clone() };
    let run = Run::new(Collector::new(&m, &classes, killed.clone()), &corpus, None, dir.path()).unwrap();
    assert!(run.stats(&Silent).is_err());
    assert!(dir.path().join(".partial-stats.safetensors").exists());
    let run = Run::new(Collector::new(&m, &classes, opts.clone()), &corpus, None, dir.path()).unwrap();
    let resumed = run.stats(&Silent).unwrap();
    // It took over at block 4 (checkpointed after every block) and did only the rest.
    assert_eq!(
        run.progress(Pass::Stats),
        PassProgress { reused: false, resumed_from: Some(4), blocks_processed: blocks - 4 }
    );
    assert_eq!(resumed, stats);
    assert!(!dir.path().join(".partial-stats.safetensors").exists());

    let run = Run::new(Collector::new(&m, &classes, killed), &corpus, None, dir.path()).unwrap();
    // Statistics are finished and reused; the decision pass is interrupted and resumed.
    assert_eq!(run.stats(&Silent).unwrap(), stats);
    assert_eq!(run.progress(Pass::Stats), PassProgress { reused: true, resumed_from: None, blocks_processed: 0 });
    assert!(run.decisions(&stats, &Silent).is_err());
    let stopped_at = run.progress(Pass::Decisions).blocks_processed;
    let run = Run::new(Collector::new(&m, &classes, opts), &corpus, None, dir.path()).unwrap();
    assert_eq!(run.decisions(&stats, &Silent).unwrap(), decisions);
    // Held-out texts are a fifth of each block: some blocks have none, so the 4 blocks with
    // held-out texts that the killed pass did may span more than 4 blocks.
    assert!(stopped_at >= 4, "{stopped_at}");
    assert_eq!(
        run.progress(Pass::Decisions),
        PassProgress { reused: false, resumed_from: Some(stopped_at), blocks_processed: blocks - stopped_at }
    );
}
