//! The training loop: a run killed mid-way resumes from its checkpoint to the same weights as
//! an uninterrupted run, with the NC3 regularizer on; and masked-LM loss goes down.

mod common;

use common::*;
use fairnc::collapse::Target;
use fairnc::data::corpus::Corpus;
use fairnc::model::LanguageModel;
use fairnc::train::nc3::{Nc3Regularizer, Nc3Variant};
use fairnc::train::objective::MaskedLm;
use fairnc::train::optim::AdamWConfig;
use fairnc::train::trainer::{TrainConfig, Trainer};
use fairnc::util::progress::Silent;
use fairnc::words::{ClassSet, Policy, WordSet};
use std::path::Path;

fn run(out: &Path, cfg: TrainConfig) -> (LanguageModel, anyhow::Result<u64>) {
    let m = load(&model_dir("bert"));
    let texts = Corpus::load(fixture("collapse/corpus.txt").to_str().unwrap()).unwrap().texts;
    let obj = MaskedLm::new(&m, &texts, 64).unwrap();
    let classes = ClassSet::map(&WordSet::load("gender").unwrap(), &m.tokenizer, Policy::WholeWord).unwrap();
    let nc3 =
        Some(Nc3Regularizer::new(&classes, m.config.vocab_size, m.config.hidden_size, Target::Same, Nc3Variant::Std));
    let result = {
        let mut t = Trainer { model: &m, cfg, out: out.to_path_buf(), nc3 };
        t.run(&obj, &Silent)
    };
    (m, result)
}

fn config() -> TrainConfig {
    TrainConfig {
        steps: 6,
        batch_size: 8,
        grad_accum: 2,
        adamw: AdamWConfig { lr: 1e-3, ..AdamWConfig::default() },
        warmup: 2,
        checkpoint_every: 2,
        nc3_lambda: Some(1.0),
        seed: 5,
        ..TrainConfig::default()
    }
}

#[test]
fn killed_run_resumes_to_the_same_weights() {
    let a = tempfile::tempdir().unwrap();
    let (whole, r) = run(a.path(), config());
    assert_eq!(r.unwrap(), 6);
    let b = tempfile::tempdir().unwrap();
    let (_, r) = run(b.path(), TrainConfig { stop_after: Some(3), ..config() });
    assert!(r.is_err());
    assert_eq!(std::fs::read_to_string(b.path().join("checkpoint-latest")).unwrap(), "checkpoint-2");
    let killed_log = std::fs::read_to_string(b.path().join("log.jsonl")).unwrap();
    assert_eq!(killed_log.lines().count(), 3, "{killed_log}");
    let (resumed, r) = run(b.path(), config());
    assert_eq!(r.unwrap(), 6);
    // The second process took over at the checkpoint's step: steps 1 and 2 were not redone (their
    // lines, timing included, are the killed process's), step 3 (after the checkpoint) was, and
    // the first line it wrote says where it resumed.
    let log_b = std::fs::read_to_string(b.path().join("log.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log_b.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|l| l["step"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6], "{log_b}");
    assert_eq!(
        log_b.lines().take(2).collect::<Vec<_>>(),
        killed_log.lines().take(2).collect::<Vec<_>>(),
        "steps before the checkpoint were rewritten"
    );
    assert_ne!(log_b.lines().nth(2), killed_log.lines().nth(2), "step 3 (after the checkpoint) was not redone");
    let resumed_from: Vec<(u64, u64)> =
        lines.iter().filter_map(|l| Some((l["step"].as_u64()?, l.get("resumed_from")?.as_u64()?))).collect();
    assert_eq!(resumed_from, [(3, 2)], "{log_b}");
    for (name, v) in whole.vars() {
        let w = resumed.params.var(&name);
        let d = v.as_tensor().sub(w.as_tensor()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(d, 0.0, "{name}");
    }
    let log_a = std::fs::read_to_string(a.path().join("log.jsonl")).unwrap();
    assert!(!log_a.contains("resumed_from"), "{log_a}");
    let losses = |s: &str| -> Vec<f64> {
        s.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap()).collect()
    };
    assert_eq!(losses(&log_a), losses(&log_b));
    let first: serde_json::Value = serde_json::from_str(log_a.lines().next().unwrap()).unwrap();
    assert!(first["terms"]["nc3"].is_number() && first["nc3_classes"].as_u64().unwrap() >= 2, "{first}");
}

/// A log that lacks a step the checkpoint covers (cut short, a line lost, deleted) is refused on
/// resume with the file and the missing steps named, and left untouched; a line cut short after
/// the checkpoint's step (a kill during the write) is dropped and redone.
#[test]
fn truncated_log_is_refused_on_resume() {
    let killed = || {
        let dir = tempfile::tempdir().unwrap();
        let (_, r) = run(dir.path(), TrainConfig { stop_after: Some(3), ..config() });
        assert!(r.is_err());
        let log = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
        assert_eq!(
            (log.lines().count(), std::fs::read_to_string(dir.path().join("checkpoint-latest")).unwrap()),
            (3, "checkpoint-2".to_string())
        );
        (dir, log)
    };
    let line = |log: &str, i: usize| log.lines().nth(i).unwrap().to_string();
    // (what was done to the log, its new content, the error expected)
    let (_d, log) = killed();
    let cases = [
        (
            "last checkpointed line cut",
            format!("{}\n{}", line(&log, 0), &line(&log, 1)[..20]),
            "log.jsonl: line 2 is cut short or not a log record where the record of step 2 was expected; the checkpoint is at step 2, so steps 2..=2 are missing",
        ),
        (
            "first line lost",
            format!("{}\n{}\n", line(&log, 1), line(&log, 2)),
            "log.jsonl: line 1 is step 2 where the record of step 1 was expected",
        ),
        (
            "only one line left",
            format!("{}\n", line(&log, 0)),
            "log.jsonl: ends at step 1 but the checkpoint is at step 2: the log of steps 2..=2 is missing (truncated)",
        ),
    ];
    for (what, content, expected) in cases {
        let (dir, _) = killed();
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, &content).unwrap();
        let (_, r) = run(dir.path(), config());
        let err = format!("{:#}", r.expect_err(what));
        assert!(
            err.contains(expected) && err.contains(&path.display().to_string()) && !err.contains('\n'),
            "{what}: {err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), content, "{what}: the log was changed");
    }
    let (dir, _) = killed();
    std::fs::remove_file(dir.path().join("log.jsonl")).unwrap();
    let err = format!("{:#}", run(dir.path(), config()).1.expect_err("log deleted"));
    assert!(err.contains("log.jsonl: missing, but the checkpoint is at step 2"), "{err}");
    // Cut inside step 3's line, after the checkpoint: a kill while writing. Resumes and redoes it.
    let (dir, log) = killed();
    let path = dir.path().join("log.jsonl");
    std::fs::write(&path, format!("{}\n{}\n{}", line(&log, 0), line(&log, 1), &line(&log, 2)[..15])).unwrap();
    let (_, r) = run(dir.path(), config());
    assert_eq!(r.unwrap(), 6);
    let steps: Vec<u64> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 6]);
}

#[test]
fn masked_lm_loss_goes_down() {
    let a = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        steps: 40,
        batch_size: 16,
        grad_accum: 1,
        adamw: AdamWConfig { lr: 3e-3, ..AdamWConfig::default() },
        checkpoint_every: 100,
        nc3_lambda: None,
        ..TrainConfig::default()
    };
    let (_, r) = run(a.path(), cfg);
    r.unwrap();
    let log = std::fs::read_to_string(a.path().join("log.jsonl")).unwrap();
    let losses: Vec<f64> =
        log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap()).collect();
    let head: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let tail: f64 = losses[35..].iter().sum::<f64>() / 5.0;
    // About 5.7 -> 4.6 (the first steps vary with the dropout stream).
    assert!(tail < head * 0.85, "loss {head} -> {tail}");
}

#[test]
fn debias_command_saves_a_loadable_checkpoint_and_guards_its_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out_s = out.to_str().unwrap();
    let bert = model_dir("bert").display().to_string();
    let corpus = fixture("collapse/corpus.txt").display().to_string();
    let args = [
        "debias",
        "--model",
        &bert,
        "--method",
        "cda",
        "--nc3",
        "10",
        "--corpus",
        &corpus,
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--output",
        out_s,
    ];
    let o = fairnc(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = load(&out.join("model"));
    assert!(!m.params.new_head);
    assert!(out.join("loss.png").exists() && out.join("log.jsonl").exists());
    // Another run into the same directory is refused; the same run resumes (nothing left to do).
    let o = fairnc(&[
        "debias", "--model", &bert, "--method", "dropout", "--corpus", &corpus, "--steps", "4", "--output", out_s,
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--overwrite"));
    let mut resume = args.to_vec();
    resume.push("--resume");
    let o = fairnc(&resume);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A corpus without attribute words names the word set.
    let plain = tmp.path().join("plain.txt");
    std::fs::write(&plain, "the cat sat on the mat .\n").unwrap();
    let o = fairnc(&[
        "debias",
        "--model",
        &bert,
        "--method",
        "cda",
        "--corpus",
        plain.to_str().unwrap(),
        "--steps",
        "1",
        "--output",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("word set gender"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn head_only_training_leaves_the_encoder_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let bert = model_dir("bert").display().to_string();
    let corpus = fixture("collapse/corpus.txt").display().to_string();
    let o = fairnc(&[
        "debias",
        "--model",
        &bert,
        "--method",
        "bec",
        "--corpus",
        &corpus,
        "--train",
        "head",
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--lr",
        "1e-2",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = load(&model_dir("bert"));
    let after = load(&out.join("model"));
    for (name, v) in before.vars() {
        let d = v
            .as_tensor()
            .sub(after.params.var(&name).as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        if fairnc::model::layout::is_head_param(&name) {
            assert!(d > 0.0, "{name} was not trained");
        } else {
            assert_eq!(d, 0.0, "{name} changed");
        }
    }
    // ASE-style: WinoBias pronouns masked (bundle data); refused for a causal LM.
    let o = fairnc(&[
        "debias",
        "--model",
        &bert,
        "--method",
        "ase",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--output",
        tmp.path().join("ase").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = fairnc(&[
        "debias",
        "--model",
        model_dir("gpt2").to_str().unwrap(),
        "--method",
        "ase",
        "--steps",
        "1",
        "--output",
        tmp.path().join("ase2").to_str().unwrap(),
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("masked LM"));
    // GPT-2's head is its tied embedding: nothing to train.
    let o = fairnc(&[
        "debias",
        "--model",
        model_dir("gpt2").to_str().unwrap(),
        "--method",
        "dropout",
        "--corpus",
        &corpus,
        "--train",
        "head",
        "--steps",
        "1",
        "--output",
        tmp.path().join("g").to_str().unwrap(),
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("nothing to train"));
}

/// One MLM step on the tiny BERT against transformers + torch.optim.AdamW
/// (tools/fixtures/make_train_fixture.py): loss, gradient norm and every updated weight.
#[test]
fn one_adamw_step_matches_pytorch() {
    use candle_core::{Device, Tensor};
    use fairnc::model::Exec;
    use fairnc::train::optim::{AdamW, clip_grad_norm};
    let fx = fairnc::model::weights::load_tensors(&fixture("train/onestep.safetensors"), &Device::Cpu).unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("train/onestep.json")).unwrap()).unwrap();
    let m = load(&model_dir("bert"));
    let ids: Vec<Vec<i64>> = fx["input_ids"].to_vec2().unwrap();
    let mask: Vec<Vec<i64>> = fx["attention_mask"].to_vec2().unwrap();
    let rows: Vec<Vec<u32>> = ids
        .iter()
        .zip(&mask)
        .map(|(r, k)| r.iter().zip(k).filter(|(_, k)| **k == 1).map(|(i, _)| *i as u32).collect())
        .collect();
    let positions: Vec<(usize, usize)> =
        fx["positions"].to_vec2::<i64>().unwrap().iter().map(|p| (p[0] as usize, p[1] as usize)).collect();
    let targets: Vec<u32> = fx["targets"].to_vec1::<i64>().unwrap().iter().map(|&t| t as u32).collect();
    let batch = m.batch(rows).unwrap();
    let exec = Exec { dropout: false, grad: true };
    let hidden = m.hidden(&batch, exec).unwrap();
    let logits = m.logits_at(&hidden, &positions, exec).unwrap();
    let loss =
        candle_nn::loss::cross_entropy(&logits, &Tensor::new(targets.as_slice(), &Device::Cpu).unwrap()).unwrap();
    let loss_v = loss.to_scalar::<f32>().unwrap() as f64;
    let mut grads = loss.backward().unwrap();
    let vars: Vec<candle_core::Var> = m.vars().into_iter().map(|(_, v)| v).collect();
    let norm = clip_grad_norm(&mut grads, &vars, 1.0).unwrap();
    let mut opt = AdamW::new(m.vars(), AdamWConfig { lr: 1e-3, weight_decay: 0.01, ..AdamWConfig::default() }).unwrap();
    opt.step(&grads, 1e-3).unwrap();
    let (want_loss, want_norm) = (meta["loss"].as_f64().unwrap(), meta["grad_norm"].as_f64().unwrap());
    eprintln!("loss {loss_v} vs {want_loss}, grad norm {norm} vs {want_norm}");
    assert!((loss_v - want_loss).abs() < 1e-5);
    assert!((norm - want_norm).abs() < 1e-5);
    let mut worst: f32 = 0.0;
    for name in meta["param_names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()) {
        let d = m
            .params
            .var(name)
            .as_tensor()
            .sub(&fx[name])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        if name.ends_with("attention.self.key.bias") {
            // Its true gradient is 0 (softmax ignores a per-query constant): both sides see
            // rounding noise of ~1e-9, which Adam's normalisation turns into steps of up to lr.
            assert!(d <= 1e-3, "{name}: {d}");
            continue;
        }
        worst = worst.max(d);
        assert!(d < 1e-5, "{name}: {d}");
    }
    eprintln!("max |Δ weight| after one step: {worst:.1e}");
}

/// Wraps an objective and spoils the `at`-th call: its loss becomes NaN (`grad: false`), or the
/// loss stays finite while the gradient becomes infinite (`grad: true`, through √ at 0).
struct Spoiled {
    inner: MaskedLm,
    at: usize,
    grad: bool,
    calls: std::cell::Cell<usize>,
}

impl fairnc::train::objective::Objective for Spoiled {
    fn name(&self) -> &'static str {
        "mlm"
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn step(
        &self,
        m: &LanguageModel,
        ex: &[usize],
        rng: &mut fairnc::util::rng::SplitMix,
    ) -> anyhow::Result<fairnc::train::objective::Step> {
        let mut s = self.inner.step(m, ex, rng)?;
        let call = self.calls.get();
        self.calls.set(call + 1);
        if call == self.at {
            if self.grad {
                // Exactly 0 forward, gradient 1/(2·√0) = inf into the tied matrix.
                let w = m.classifier().as_tensor().sum_all()?;
                let zero = (&w - w.detach())?;
                s.loss = (s.loss + zero.sqrt()?)?;
            } else {
                s.loss = (s.loss * f64::NAN)?;
                s.terms[0].1 = f64::NAN;
            }
        }
        Ok(s)
    }
}

#[test]
fn non_finite_loss_or_gradient_stops_and_keeps_the_last_good_checkpoint() {
    for grad in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let m = load(&model_dir("bert"));
        let texts = Corpus::load(fixture("collapse/corpus.txt").to_str().unwrap()).unwrap().texts;
        let obj = Spoiled { inner: MaskedLm::new(&m, &texts, 64).unwrap(), at: 5, grad, calls: 0.into() };
        // grad_accum 2: call 5 is the second micro-batch of step 2 (0-based), the third step.
        let cfg = TrainConfig { nc3_lambda: None, ..config() };
        let err = Trainer { model: &m, cfg, out: tmp.path().to_path_buf(), nc3: None }
            .run(&obj, &Silent)
            .expect_err(if grad { "NaN gradient" } else { "NaN loss" })
            .to_string();
        let expected = if grad {
            "non-finite gradient norm at step 3 (parameters: "
        } else {
            "non-finite loss at step 3 (terms: mlm)"
        };
        assert!(err.contains(expected), "{err}");
        // The spoiled gradient enters through the tied decoder, i.e. the word embeddings.
        assert!(!grad || err.contains("word_embeddings"), "{err}");
        assert_eq!(std::fs::read_to_string(tmp.path().join("checkpoint-latest")).unwrap(), "checkpoint-2");
        let saved = fairnc::model::weights::load_tensors(&tmp.path().join("checkpoint-2/model.safetensors"), &m.device)
            .unwrap();
        for (name, t) in saved {
            let max = t.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(max.is_finite(), "{name}");
        }
    }
}

/// A disk that fills up while a checkpoint is written: the run stops with the reason, the
/// previous checkpoint stays complete and current, and a later `--resume` finishes the run.
#[test]
fn disk_full_while_checkpointing_keeps_the_previous_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let bert = model_dir("bert").display().to_string();
    let corpus = fixture("collapse/corpus.txt").display().to_string();
    let args = [
        "debias",
        "--model",
        &bert,
        "--method",
        "cda",
        "--corpus",
        &corpus,
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--checkpoint-every",
        "2",
        "--output",
        out.to_str().unwrap(),
    ];
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fairnc"))
        .args(args)
        .env("FAIRNC_DISK_FULL_UNDER", out.join("checkpoint-4"))
        .env("FAIRNC_NO_PROGRESS", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("checkpoint at step 4 not written") && err.contains("No space left on device"), "{err}");
    assert_eq!(err.trim().lines().filter(|l| l.starts_with("error")).count(), 1, "{err}");
    assert_eq!(std::fs::read_to_string(out.join("checkpoint-latest")).unwrap(), "checkpoint-2");
    assert!(!out.join("checkpoint-4").exists());
    fairnc::model::weights::load_tensors(&out.join("checkpoint-2/model.safetensors"), &candle_core::Device::Cpu)
        .unwrap();
    let mut resume = args.to_vec();
    resume.push("--resume");
    let o = fairnc(&resume);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    load(&out.join("model"));
}
