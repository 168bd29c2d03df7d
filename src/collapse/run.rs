//! Running the statistics over a corpus with a model: batching, labelling, feature
//! extraction, the three passes (1 and 2 share a forward pass), checkpoints and shards.
//!
//! The corpus is cut into blocks of consecutive texts; batches never cross a block, so each
//! text meets the same batch whether the run is whole or sharded, and a shard is a range of
//! blocks.

use super::shard::{self, Header, Identity, Shard};
use super::stats::{ClassStats, Decisions};
use super::{Features, Target};
use crate::data::corpus::Corpus;
use crate::model::{Exec, LanguageModel, Overflow, plan_by_length};
use crate::util::progress::{Progress, Unit};
use crate::words::ClassSet;
use anyhow::{Context, Result, bail};
use candle_core::Tensor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub target: Target,
    pub features: Features,
    pub max_len: usize,
    pub batch_size: usize,
    pub heldout: f64,
    pub min_count: u64,
    /// Texts per block (batches never cross a block; a shard is a range of blocks).
    pub block: usize,
    /// Time between checkpoints of a pass.
    pub checkpoint_every: Duration,
    /// Abort a pass after this many blocks, as a killed run would (tests of resumption).
    pub stop_after_blocks: Option<usize>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            target: Target::Same,
            features: Features::Hidden,
            max_len: 128,
            batch_size: 64,
            heldout: 0.2,
            min_count: 1,
            block: 1024,
            checkpoint_every: Duration::from_secs(60),
            stop_after_blocks: None,
        }
    }
}

/// Which positions of a batch are labelled with a class, under a target convention: shared by
/// the statistics and the NC3 regularizer.
#[derive(Debug, Clone)]
pub struct ClassLookup {
    /// token id → index into the class set (or -1).
    lookup: Vec<i32>,
    pub target: Target,
}

impl ClassLookup {
    pub fn new(classes: &ClassSet, vocab_size: usize, target: Target) -> Self {
        let mut lookup = vec![-1i32; vocab_size];
        for (i, c) in classes.classes.iter().enumerate() {
            if let Some(slot) = lookup.get_mut(c.id as usize) {
                *slot = i as i32;
            }
        }
        ClassLookup { lookup, target }
    }

    /// (class index, flat position `row · t + p`) of every labelled position of `rows` padded
    /// to length `t`.
    pub fn labelled_positions(&self, rows: &[Vec<u32>], t: usize) -> (Vec<usize>, Vec<u32>) {
        let mut labels = Vec::new();
        let mut flat = Vec::new();
        for (r, ids) in rows.iter().enumerate() {
            for p in 0..ids.len() {
                let label = match self.target {
                    Target::Same => ids[p],
                    Target::Next => match ids.get(p + 1) {
                        Some(&next) => next,
                        None => continue,
                    },
                };
                if let Some(&c) = self.lookup.get(label as usize)
                    && c >= 0
                {
                    labels.push(c as usize);
                    flat.push((r * t + p) as u32);
                }
            }
        }
        (labels, flat)
    }
}

/// Labels and features of the class-labelled positions of a batch of texts.
pub struct Collector<'a> {
    pub model: &'a LanguageModel,
    pub classes: &'a ClassSet,
    lookup: ClassLookup,
    pub opts: RunOptions,
}

/// Fingerprint of what a model computes for these classes: its config and classifier rows.
fn model_fingerprint(model: &LanguageModel, w: &[f32]) -> String {
    let mut bytes = model.config.raw.to_string().into_bytes();
    bytes.extend(w.iter().flat_map(|x| x.to_le_bytes()));
    // A projected model computes other features: its statistics are not the base model's.
    if let Some(p) = model.projection() {
        bytes.extend(p.sha256.as_bytes());
    }
    crate::util::hash::hex_digest(&bytes)
}

impl<'a> Collector<'a> {
    pub fn new(model: &'a LanguageModel, classes: &'a ClassSet, opts: RunOptions) -> Self {
        let lookup = ClassLookup::new(classes, model.config.vocab_size.max(model.tokenizer.vocab_size()), opts.target);
        Collector { model, classes, lookup, opts }
    }

    /// The classifier rows `[K·D]` of the classes.
    pub fn classifier_rows(&self) -> Result<Vec<f32>> {
        let ids = Tensor::new(self.classes.ids().as_slice(), &self.model.device)?;
        let rows = self.model.classifier().as_tensor().index_select(&ids, 0)?;
        // f32 like every other model output, whatever dtype the model is kept in.
        Ok(rows.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?)
    }

    /// Features `[N, D]` (row-major) of the labelled positions of one batch, with their labels.
    pub fn batch_features(&self, rows: Vec<Vec<u32>>) -> Result<(Vec<usize>, Vec<f32>)> {
        let m = self.model;
        let batch = m.batch(rows)?;
        let (labels, flat) = self.lookup.labelled_positions(&batch.ids, batch.seq_len);
        if labels.is_empty() {
            return Ok((labels, Vec::new()));
        }
        let hidden = m.hidden(&batch, Exec::INFER)?;
        let (b, t, d) = hidden.dims3()?;
        let idx = Tensor::new(flat.as_slice(), &m.device)?;
        let rows = hidden.reshape((b * t, d))?.index_select(&idx, 0)?;
        let feats = match self.opts.features {
            Features::Hidden => rows,
            Features::Head => m.head_features(&rows, Exec::INFER)?,
        };
        Ok((labels, feats.flatten_all()?.to_vec1()?))
    }

    /// Runs `f` on the features of every batch of the given texts (one block).
    fn for_batches(&self, texts: &[&str], mut f: impl FnMut(&[usize], &[f32]) -> Result<()>) -> Result<usize> {
        let enc = self.model.encode(texts, self.opts.max_len, Overflow::Truncate)?;
        let lengths: Vec<usize> = enc.iter().map(|e| e.ids.len()).collect();
        let tokens = lengths.iter().sum();
        for group in
            plan_by_length(&lengths, self.opts.batch_size.max(1), self.opts.batch_size.max(1) * self.opts.max_len)
        {
            let (labels, feats) = self.batch_features(group.iter().map(|&i| enc[i].ids.clone()).collect())?;
            if !labels.is_empty() {
                f(&labels, &feats)?;
            }
        }
        Ok(tokens)
    }
}

/// Nearest-class-mean and linear decisions for feature rows, in f64.
pub struct Decider {
    /// Indices (into the class set) of S'.
    kept: Vec<i64>,
    w: Tensor,
    mu: Tensor,
    mu_sq: Tensor,
}

impl Decider {
    pub fn new(stats: &ClassStats, w: &[f32], min_count: u64) -> Result<Self> {
        let d = stats.dim;
        let k = stats.num_classes();
        let mut kept = vec![-1i64; k];
        let mut wv = Vec::new();
        let mut mv = Vec::new();
        let mut n = 0;
        for c in 0..k {
            if stats.counts[c] >= min_count.max(1) {
                kept[c] = n;
                n += 1;
                wv.extend(w[c * d..(c + 1) * d].iter().map(|&x| x as f64));
                mv.extend(stats.mean(c));
            }
        }
        let dev = candle_core::Device::Cpu;
        let n = n as usize;
        let mu = Tensor::from_vec(mv, (n, d), &dev)?;
        let mu_sq = mu.sqr()?.sum(1)?;
        Ok(Decider { kept, w: Tensor::from_vec(wv, (n, d), &dev)?, mu, mu_sq })
    }

    pub fn add(&self, labels: &[usize], feats: &[f32], out: &mut Decisions) -> Result<()> {
        let d = self.w.dim(1)?;
        let rows: Vec<(usize, usize)> =
            labels.iter().enumerate().filter(|(_, c)| self.kept[**c] >= 0).map(|(i, c)| (i, *c)).collect();
        for chunk in rows.chunks(512) {
            let x: Vec<f64> =
                chunk.iter().flat_map(|(i, _)| feats[i * d..(i + 1) * d].iter().map(|&v| v as f64)).collect();
            let x = Tensor::from_vec(x, (chunk.len(), d), &candle_core::Device::Cpu)?;
            let linear: Vec<Vec<f64>> = x.matmul(&self.w.t()?)?.to_vec2()?;
            // ‖h − μ‖² up to the per-row constant ‖h‖²: ‖μ‖² − 2⟨h, μ⟩.
            let dist: Vec<Vec<f64>> =
                self.mu_sq.unsqueeze(0)?.broadcast_sub(&(x.matmul(&self.mu.t()?)? * 2.0)?)?.to_vec2()?;
            for (((_, c), lin), dis) in chunk.iter().zip(&linear).zip(&dist) {
                let argmax = lin.iter().enumerate().fold(0, |b, (j, v)| if *v > lin[b] { j } else { b });
                let argmin = dis.iter().enumerate().fold(0, |b, (j, v)| if *v < dis[b] { j } else { b });
                out.positions[*c] += 1;
                out.agree[*c] += (argmax == argmin) as u64;
            }
        }
        Ok(())
    }
}

/// One pass over a range of blocks, for statistics or decisions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pass {
    Stats,
    Decisions,
}

/// The files a run keeps in its output directory.
pub fn stats_path(dir: &Path) -> PathBuf {
    dir.join("stats.safetensors")
}
pub fn decisions_path(dir: &Path) -> PathBuf {
    dir.join("decisions.safetensors")
}
fn partial_path(dir: &Path, pass: Pass) -> PathBuf {
    dir.join(match pass {
        Pass::Stats => ".partial-stats.safetensors",
        Pass::Decisions => ".partial-decisions.safetensors",
    })
}

/// What one pass did in this process: reused a finished result, resumed from a checkpoint's
/// block, or started at the first block; and how many blocks it processed itself. Tests use it
/// to prove that a resumed run did not silently start over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassProgress {
    pub reused: bool,
    pub resumed_from: Option<usize>,
    pub blocks_processed: usize,
}

pub struct Run<'a> {
    pub collector: Collector<'a>,
    pub corpus: &'a Corpus,
    pub identity: Identity,
    pub w: Vec<f32>,
    pub blocks: (usize, usize),
    pub out: PathBuf,
    /// Stored in shard headers for `merge` (class set and settings).
    pub info: serde_json::Value,
    /// The last call of each pass ([statistics, decisions]).
    progress: [std::cell::Cell<PassProgress>; 2],
}

impl<'a> Run<'a> {
    /// Prepares a run over shard `shard = (i, n)` of the corpus (or all of it).
    pub fn new(
        collector: Collector<'a>,
        corpus: &'a Corpus,
        shard: Option<(usize, usize)>,
        out: &Path,
    ) -> Result<Self> {
        let w = collector.classifier_rows()?;
        let o = &collector.opts;
        let n_blocks = corpus.texts.len().div_ceil(o.block);
        let blocks = match shard {
            None => (0, n_blocks),
            Some((i, n)) => {
                if n == 0 || i >= n {
                    bail!("--shard {i}/{n}: expected i/n with 0 ≤ i < n");
                }
                (i * n_blocks / n, (i + 1) * n_blocks / n)
            }
        };
        let identity = Identity {
            model: model_fingerprint(collector.model, &w),
            classes: collector.classes.ids(),
            class_set: collector.classes.name.clone(),
            target: o.target,
            features: o.features,
            max_len: o.max_len,
            corpus: corpus.name.clone(),
            corpus_texts: corpus.texts.len(),
            corpus_hash: crate::util::hash::hex_digest(corpus.texts.join("\n").as_bytes()),
            heldout: o.heldout,
            block: o.block,
        };
        std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
        Ok(Run {
            collector,
            corpus,
            identity,
            w,
            blocks,
            out: out.to_path_buf(),
            info: serde_json::Value::Null,
            progress: Default::default(),
        })
    }

    /// What the last call of `pass` did (all zero before the first).
    pub fn progress(&self, pass: Pass) -> PassProgress {
        self.progress[pass as usize].get()
    }

    fn texts_of_block(&self, b: usize, pass: Pass) -> Vec<&str> {
        let block = self.collector.opts.block;
        let f = self.collector.opts.heldout;
        let end = ((b + 1) * block).min(self.corpus.texts.len());
        (b * block..end)
            .filter(|&i| (pass == Pass::Decisions) == crate::data::corpus::Corpus::is_heldout(i, f))
            .map(|i| self.corpus.texts[i].as_str())
            .collect()
    }

    fn header(&self, kind: &str, next_block: Option<usize>, means: Option<String>) -> Header {
        let done_to = next_block.unwrap_or(self.blocks.1);
        Header {
            kind: kind.into(),
            identity: self.identity.clone(),
            blocks: vec![(self.blocks.0, done_to)],
            means,
            min_count: (kind == "decisions").then_some(self.collector.opts.min_count),
            next_block,
            info: Some(self.info.clone()),
        }
    }

    /// Statistics (passes 1 and 2) over this run's blocks, resuming from a checkpoint or
    /// reusing a finished shard with the same identity.
    pub fn stats(&self, progress: &dyn Progress) -> Result<ClassStats> {
        if let Some(s) = self.finished_stats() {
            self.progress[Pass::Stats as usize].set(PassProgress { reused: true, ..PassProgress::default() });
            return Ok(s);
        }
        let partial = partial_path(&self.out, Pass::Stats);
        let (mut stats, start) = self.resumed_stats(&partial, progress);
        self.blocks_loop(
            Pass::Stats,
            start,
            progress,
            &mut stats,
            |s, labels, feats| s.add(labels, feats),
            |run, s, next| shard::write_stats(&partial, &run.header("stats", Some(next), None), s, &run.w),
        )?;
        shard::write_stats(&stats_path(&self.out), &self.header("stats", None, None), &stats, &self.w)?;
        let _ = std::fs::remove_file(&partial);
        Ok(stats)
    }

    /// This run's statistics if a previous call finished them.
    fn finished_stats(&self) -> Option<ClassStats> {
        match shard::read(&stats_path(&self.out)) {
            Ok(Shard::Stats(h, s, _)) if h.identity == self.identity && h.blocks == vec![self.blocks] => Some(s),
            _ => None,
        }
    }

    /// Where the statistics pass starts: from this run's checkpoint at `partial` if there is
    /// one, else empty at the first block.
    fn resumed_stats(&self, partial: &Path, progress: &dyn Progress) -> (ClassStats, usize) {
        match shard::read(partial) {
            Ok(Shard::Stats(h, s, _))
                if h.identity == self.identity && h.blocks.first().map(|b| b.0) == Some(self.blocks.0) =>
            {
                let next = h.next_block.unwrap_or(self.blocks.0);
                progress
                    .message(&format!("resuming statistics at block {next} of {}..{}", self.blocks.0, self.blocks.1));
                (s, next)
            }
            _ => {
                let (k, d) = (self.collector.classes.classes.len(), self.collector.model.feature_width());
                (ClassStats::new(k, d), self.blocks.0)
            }
        }
    }

    /// Decisions (pass 3) over the held-out texts of this run's blocks, against the means of
    /// `means` (the merged statistics of the whole corpus).
    pub fn decisions(&self, means: &ClassStats, progress: &dyn Progress) -> Result<Decisions> {
        let fp = means.fingerprint();
        if let Some(d) = self.finished_decisions(&fp) {
            self.progress[Pass::Decisions as usize].set(PassProgress { reused: true, ..PassProgress::default() });
            return Ok(d);
        }
        let decider = Decider::new(means, &self.w, self.collector.opts.min_count)?;
        let partial = partial_path(&self.out, Pass::Decisions);
        let (mut dec, start) = self.resumed_decisions(&partial, &fp, progress);
        self.blocks_loop(
            Pass::Decisions,
            start,
            progress,
            &mut dec,
            |d, labels, feats| decider.add(labels, feats, d),
            |run, d, next| shard::write_decisions(&partial, &run.header("decisions", Some(next), Some(fp.clone())), d),
        )?;
        shard::write_decisions(&decisions_path(&self.out), &self.header("decisions", None, Some(fp)), &dec)?;
        let _ = std::fs::remove_file(&partial);
        Ok(dec)
    }

    /// This run's decisions against the means fingerprinted `fp`, if a previous call finished them.
    fn finished_decisions(&self, fp: &str) -> Option<Decisions> {
        match shard::read(&decisions_path(&self.out)) {
            Ok(Shard::Decisions(h, d))
                if h.identity == self.identity
                    && h.means.as_deref() == Some(fp)
                    && h.blocks == vec![self.blocks]
                    && h.min_count == Some(self.collector.opts.min_count) =>
            {
                Some(d)
            }
            _ => None,
        }
    }

    /// Where the decision pass starts: from this run's checkpoint (against the same means) at
    /// `partial` if there is one, else empty at the first block.
    fn resumed_decisions(&self, partial: &Path, fp: &str, progress: &dyn Progress) -> (Decisions, usize) {
        match shard::read(partial) {
            Ok(Shard::Decisions(h, d))
                if h.identity == self.identity
                    && h.means.as_deref() == Some(fp)
                    && h.min_count == Some(self.collector.opts.min_count) =>
            {
                let next = h.next_block.unwrap_or(self.blocks.0);
                progress.message(&format!("resuming decisions at block {next}"));
                (d, next)
            }
            _ => (Decisions::new(self.collector.classes.classes.len()), self.blocks.0),
        }
    }

    /// Feeds every labelled batch of blocks `start..` to `add`, checkpointing `state` now and
    /// then with the next block to do.
    fn blocks_loop<S>(
        &self,
        pass: Pass,
        start: usize,
        progress: &dyn Progress,
        state: &mut S,
        add: impl Fn(&mut S, &[usize], &[f32]) -> Result<()>,
        checkpoint: impl Fn(&Self, &S, usize) -> Result<()>,
    ) -> Result<()> {
        let total: usize = (start..self.blocks.1).map(|b| self.texts_of_block(b, pass).len()).sum();
        let what = match pass {
            Pass::Stats => "statistics",
            Pass::Decisions => "held-out decisions",
        };
        let resumed_from = (start > self.blocks.0).then_some(start);
        self.progress[pass as usize].set(PassProgress { reused: false, resumed_from, blocks_processed: 0 });
        let phase = progress.phase(what, total as u64, Unit::Items);
        let mut done = 0u64;
        let began = Instant::now();
        let mut last = Instant::now();
        let mut tokens = 0usize;
        for b in start..self.blocks.1 {
            self.progress[pass as usize].set(PassProgress {
                reused: false,
                resumed_from,
                blocks_processed: b + 1 - start,
            });
            let texts = self.texts_of_block(b, pass);
            if texts.is_empty() {
                continue;
            }
            tokens += self.collector.for_batches(&texts, |labels, feats| add(state, labels, feats))?;
            done += texts.len() as u64;
            phase.set(done);
            phase.status(&format!("{:.0} tok/s", tokens as f64 / began.elapsed().as_secs_f64()));
            if last.elapsed() >= self.collector.opts.checkpoint_every && b + 1 < self.blocks.1 {
                checkpoint(self, state, b + 1)?;
                last = Instant::now();
            }
            if self.collector.opts.stop_after_blocks == Some(b + 1 - start) {
                bail!("stopped after {} blocks", b + 1 - start);
            }
        }
        Ok(())
    }
}
