//! Where fairnc follows the references' code rather than a shortcut: causal CrowS-Pairs counts a
//! pair whose sentences tokenize identically as a tie in N (bias-bench's causal runner);
//! `debias --policy` maps the NC3 classes as asked; ASE-style training reads every WinoBias
//! split the release's ASE uses (dev and test).

mod common;

use common::{fairnc, fixture, model_dir};
use fairnc::bench::crows::{CrowsVariant, score};
use fairnc::data::crows::CrowsPair;
use fairnc::train::objective::Objective;
use fairnc::util::progress::Silent;
use fairnc::words::{ClassSet, Policy, WordSet};

fn pair(index: usize, more: &str, less: &str) -> CrowsPair {
    CrowsPair { index, sent_more: more.into(), sent_less: less.into(), stereo: true, bias_type: "gender".into() }
}

#[test]
fn causal_crows_counts_identically_tokenized_pairs_as_ties_in_n() {
    let model = common::load(&model_dir("gpt2"));
    let pairs = [
        pair(0, "The nurse said she was tired.", "The nurse said she was tired."),
        pair(1, "He was a doctor.", "She was a doctor."),
    ];
    let r = score(&model, &pairs, CrowsVariant::BiasBench, 4, &Silent).unwrap();
    assert_eq!(r.variant, "causal");
    assert_eq!((r.skipped, r.overall.n, r.overall.neutral), (0, 2, 1), "{:?}", r.overall);
    let tie = &r.pairs[0];
    assert!(tie.skipped.is_none() && tie.stereotypical.is_none() && tie.score_more == tie.score_less, "{tie:?}");
    // The metric's denominator includes the tie: 0 or 50, never 0/1 or 1/1.
    assert!(r.overall.metric == 0.0 || r.overall.metric == 50.0, "{}", r.overall.metric);
}

#[test]
fn debias_maps_nc3_classes_by_the_chosen_policy() {
    let bert = model_dir("bert");
    let model = common::load(&bert);
    let set = WordSet::load("gender").unwrap();
    let whole = ClassSet::map(&set, &model.tokenizer, Policy::WholeWord).unwrap().classes.len();
    let first = ClassSet::map(&set, &model.tokenizer, Policy::FirstSubword).unwrap().classes.len();
    assert_ne!(whole, first, "the fixture vocabulary must tell the policies apart");
    let corpus = fixture("collapse/corpus.txt").display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    for (policy, k) in [(None, whole), (Some("whole-word"), whole), (Some("first-subword"), first)] {
        let out = tmp.path().join(policy.unwrap_or("default"));
        let mut args = vec![
            "debias",
            "--model",
            bert.to_str().unwrap(),
            "--method",
            "dropout",
            "--corpus",
            &corpus,
            "--steps",
            "1",
            "--batch-size",
            "2",
            "--output",
            out.to_str().unwrap(),
        ];
        if let Some(p) = policy {
            args.extend(["--policy", p]);
        }
        let o = fairnc(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        let name = policy.unwrap_or("whole-word");
        assert!(err.contains(&format!("NC3 classes: {k} of gender ({name} policy")), "{policy:?}: {err}");
        let run: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
        assert_eq!(run["policy"], name);
    }
    let o = fairnc(&[
        "debias",
        "--model",
        bert.to_str().unwrap(),
        "--method",
        "dropout",
        "--policy",
        "last-subword",
        "--output",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--policy"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn ase_trains_on_the_dev_and_test_splits() {
    let dir = fairnc::data::Bundle::Benchmarks.ensure().unwrap().join("WinoBias/data");
    // The eight files, listed here rather than taken from the reader's constants.
    let files = ["pro_stereotyped_type1", "pro_stereotyped_type2", "anti_stereotyped_type1", "anti_stereotyped_type2"];
    let count = |split: &str| -> usize {
        files
            .iter()
            .map(|f| fairnc::data::winobias::read_file(&dir.join(format!("{f}.txt.{split}"))).unwrap().len())
            .sum()
    };
    let (dev, test) = (count("dev"), count("test"));
    assert!(dev > 0 && test > 0, "dev {dev}, test {test}");
    let all = fairnc::data::winobias::sentences().unwrap();
    assert_eq!(all.len(), dev + test, "dev {dev} + test {test}");

    let bert = model_dir("bert");
    let model = common::load(&bert);
    let n = fairnc::train::objective::MaskedPronouns::new(&model, &all, 128).unwrap().len();
    let tmp = tempfile::tempdir().unwrap();
    let o = fairnc(&[
        "debias",
        "--model",
        bert.to_str().unwrap(),
        "--method",
        "ase",
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--output",
        tmp.path().join("ase").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("ase: {n} training examples from winobias")), "expected {n} (dev and test): {err}");
}
